        HashMap<String, Long> counts = new HashMap<>();
        for (String w : test.split(" ")) if (!w.isEmpty()) counts.merge(w, 1L, Long::sum);
        long most = counts.values().stream().mapToLong(v -> v).max().orElse(0);
        HashMap<String, Long> out = new HashMap<>();
        counts.forEach((k, v) -> { if (v == most) out.put(k, v); });
        return out;