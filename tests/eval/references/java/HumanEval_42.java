        ArrayList<Long> out = new ArrayList<>();
        for (long x : l) out.add(x + 1);
        return out;