        if (strings.isEmpty()) return Optional.empty();
        String best = strings.get(0);
        for (String s : strings) if (s.length() > best.length()) best = s;
        return Optional.of(best);