    return string.size();
}
