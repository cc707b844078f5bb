        return Collections.max(l);
    }
