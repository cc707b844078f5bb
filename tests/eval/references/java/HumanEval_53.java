        return x + y;
    }
