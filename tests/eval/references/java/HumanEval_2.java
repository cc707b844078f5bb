        return number - Math.floor(number);
    }
