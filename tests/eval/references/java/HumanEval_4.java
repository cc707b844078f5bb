        double mean = numbers.stream().mapToDouble(x -> x).average().orElse(0.0);
        return (float) numbers.stream().mapToDouble(x -> Math.abs(x - mean)).average().orElse(0.0);