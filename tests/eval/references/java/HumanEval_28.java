        return String.join("", strings);
    }
