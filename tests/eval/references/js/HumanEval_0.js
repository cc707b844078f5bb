  for (let i = 0; i < numbers.length; i++) {
    for (let j = 0; j < i; j++) {
      if (Math.abs(numbers[i] - numbers[j]) < threshold) return true;
    }
  }
  return false;
}
