    local n=$1 out="" i
    for ((i = 0; i <= n; i++)); do out+="${out:+ }$i"; done
    echo "$out"