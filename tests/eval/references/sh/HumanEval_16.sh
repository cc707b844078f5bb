    echo -n "${1,,}" | fold -w1 | sort -u | wc -l
}
