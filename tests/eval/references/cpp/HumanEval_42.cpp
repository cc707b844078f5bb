    for (long& x : l) x += 1;
    return l;