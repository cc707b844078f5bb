    local out=() x
    for x in $1; do out+=($((x + 1))); done
    echo "${out[*]}"