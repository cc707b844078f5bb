    echo $(printf "%s\n" $1 | sort -n -u)
}
