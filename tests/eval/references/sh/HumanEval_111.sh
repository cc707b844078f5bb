    local -A counts=()
    local -a order=()
    local w most=0
    for w in $1; do
        [[ -z "${counts[$w]}" ]] && order+=("$w")
        counts[$w]=$((${counts[$w]:-0} + 1))
        ((counts[$w] > most)) && most=${counts[$w]}
    done
    local out=""  # MultiPL-E joins a dict's rows with the two characters \n
    for w in "${order[@]}"; do ((counts[$w] == most)) && out+="${out:+\\n}$w,${counts[$w]}"; done
    echo "$out"