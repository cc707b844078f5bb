    local best="" s first=1
    for s in $1; do
        if ((first)) || ((${#s} > ${#best})); then best=$s; first=0; fi
    done
    if ((first)); then echo None; else echo "$best"; fi