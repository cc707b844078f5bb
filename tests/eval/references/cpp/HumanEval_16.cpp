    std::set<char> seen;
    for (char c : string) seen.insert(std::tolower(c));
    return seen.size();