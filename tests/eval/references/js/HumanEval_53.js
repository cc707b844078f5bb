  return x + y;
}
