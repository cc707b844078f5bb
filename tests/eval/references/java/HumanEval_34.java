        return new ArrayList<Long>(new TreeSet<Long>(l));
    }
