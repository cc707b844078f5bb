        return l.stream().filter(x -> x > 0).collect(Collectors.toCollection(ArrayList::new));
    }
