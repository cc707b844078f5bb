  return l.map(x => x + 1);
}
