    std::string out;
    for (long i = 0; i <= n; i++) out += (i ? " " : "") + std::to_string(i);
    return out;