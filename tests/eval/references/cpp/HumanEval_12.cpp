    if (strings.empty()) return std::nullopt;
    std::string best = strings[0];
    for (const std::string& s : strings) if (s.size() > best.size()) best = s;
    return best;