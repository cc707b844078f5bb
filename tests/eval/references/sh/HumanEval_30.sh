    local out=() x
    for x in $1; do ((x > 0)) && out+=("$x"); done
    echo "${out[*]}"