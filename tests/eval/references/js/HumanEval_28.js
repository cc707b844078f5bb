  return strings.join("");
}
