    echo "$1" | awk '{ for (i = 1; i <= NF; i++) s += $i; m = s / NF; for (i = 1; i <= NF; i++) { d = $i - m; t += d < 0 ? -d : d } print t / NF }'
}
