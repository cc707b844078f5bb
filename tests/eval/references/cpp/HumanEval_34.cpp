    std::set<long> s(l.begin(), l.end());
    return std::vector<long>(s.begin(), s.end());