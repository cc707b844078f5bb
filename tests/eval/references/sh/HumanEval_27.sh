    echo "$1" | tr "a-zA-Z" "A-Za-z"
}
