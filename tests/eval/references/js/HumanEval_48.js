  return text === [...text].reverse().join("");
}
