    std::string out;
    for (const std::string& s : strings) out += s;
    return out;