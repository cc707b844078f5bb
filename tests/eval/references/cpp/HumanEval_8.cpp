    long sum = 0, prod = 1;
    for (long x : numbers) { sum += x; prod *= x; }
    return {sum, prod};