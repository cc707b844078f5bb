    printf "%s\n" $1 | sort -n | tail -n 1
}
