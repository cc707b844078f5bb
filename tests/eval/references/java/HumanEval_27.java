        StringBuilder out = new StringBuilder();
        for (char c : string.toCharArray()) out.append(Character.isUpperCase(c) ? Character.toLowerCase(c) : Character.toUpperCase(c));
        return out.toString();