    if [[ "$1" == "$(echo -n "$1" | rev)" ]]; then echo true; else echo false; fi
}
