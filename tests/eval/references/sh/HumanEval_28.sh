    local out="" s
    for s in $1; do out+=$s; done
    echo "$out"