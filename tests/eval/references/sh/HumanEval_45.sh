    awk -v a="$1" -v h="$2" 'BEGIN { printf "%.1f\n", a * h / 2.0 }'
}
