  let sum = 0, prod = 1;
  for (const x of numbers) { sum += x; prod *= x; }
  return [sum, prod];
}
