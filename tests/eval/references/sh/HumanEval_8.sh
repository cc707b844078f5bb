    local sum=0 prod=1 x
    for x in $1; do sum=$((sum + x)); prod=$((prod * x)); done
    echo "$sum $prod"