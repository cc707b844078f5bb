  return l.filter(x => x > 0);
}
