    for (char& c : string) c = std::isupper(c) ? std::tolower(c) : std::toupper(c);
    return string;