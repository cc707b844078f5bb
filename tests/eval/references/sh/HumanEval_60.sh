    local n=$1
    echo $((n * (n + 1) / 2))