        for (int i = 0; i < numbers.size(); i++)
            for (int j = 0; j < i; j++)
                if (Math.abs(numbers.get(i) - numbers.get(j)) < threshold) return true;
        return false;