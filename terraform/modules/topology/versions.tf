terraform {
  # 1.9 is the first release whose variable validations may refer to other variables
  # (flows are checked against the regions map).
  required_version = ">= 1.9.0, < 2.0.0"
}
