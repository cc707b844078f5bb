    return a * h / 2.0;
}
