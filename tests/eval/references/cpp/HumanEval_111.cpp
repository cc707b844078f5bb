    std::map<std::string, long> counts;
    std::istringstream words(test);
    std::string w;
    long most = 0;
    while (words >> w) most = std::max(most, ++counts[w]);
    std::map<std::string, long> out;
    for (const auto& [k, v] : counts) if (v == most) out[k] = v;
    return out;