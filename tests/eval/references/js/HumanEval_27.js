  return [...string].map(c => c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()).join("");
}
