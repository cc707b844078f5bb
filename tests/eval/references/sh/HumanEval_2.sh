    awk -v x="$1" 'BEGIN { print x - int(x) }'
}
