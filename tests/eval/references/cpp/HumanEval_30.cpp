    std::vector<long> out;
    for (long x : l) if (x > 0) out.push_back(x);
    return out;