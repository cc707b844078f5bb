        return string.length();
    }
