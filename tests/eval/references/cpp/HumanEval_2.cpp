    return number - std::floor(number);
}
