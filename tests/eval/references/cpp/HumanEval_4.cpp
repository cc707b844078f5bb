    float mean = 0;
    for (float x : numbers) mean += x;
    mean /= numbers.size();
    float total = 0;
    for (float x : numbers) total += std::abs(x - mean);
    return total / numbers.size();