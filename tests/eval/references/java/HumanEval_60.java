        return n * (n + 1) / 2;
    }
