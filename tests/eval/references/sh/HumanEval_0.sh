    local -a a=($1)
    local i j
    for ((i = 0; i < ${#a[@]}; i++)); do
        for ((j = 0; j < i; j++)); do
            if awk -v x="${a[i]}" -v y="${a[j]}" -v t="$2" 'BEGIN { d = x - y; if (d < 0) d = -d; exit !(d < t) }'; then
                echo true; return
            fi
        done
    done
    echo false