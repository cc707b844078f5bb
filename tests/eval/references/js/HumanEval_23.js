  return string.length;
}
