    double mean = 0;
    for (double x : numbers) mean += x;
    mean /= numbers.size();
    double total = 0;
    for (double x : numbers) total += std::abs(x - mean);
    return total / numbers.size();
}
