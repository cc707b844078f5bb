        StringBuilder out = new StringBuilder();
        for (long i = 0; i <= n; i++) out.append(i == 0 ? "" : " ").append(i);
        return out.toString();