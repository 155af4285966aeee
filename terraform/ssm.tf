resource "aws_ssm_parameter" "setting" {
  #checkov:skip=CKV2_AWS_34:Non-secret tuning values (hours, seconds, bytes); secrets go to aws_ssm_parameter.secret as SecureString.
  for_each = local.settings
  name     = "${local.settings_path}${each.key}"
  type     = "String"
  value    = each.value
  # Operators may tune settings in the console; a later apply does not undo that.
  lifecycle {
    ignore_changes = [value]
  }
}

# One function's secret each, under <secrets_path><function>/<name>: only that function's role
# may read it (iam.tf, statement OwnSecrets). Not under settings_path, which every function
# reads by path: "if a user has access to a path, then the user can access all levels of that
# path" (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParametersByPath.html).
locals {
  # Names only (function, name): the values stay sensitive.
  secrets = nonsensitive({
    for pair in flatten([
      for function, values in var.secure_settings : [for name in keys(values) : { function = function, name = name }]
    ]) : "${pair.function}/${pair.name}" => pair
  })
}

resource "aws_ssm_parameter" "secret" {
  for_each = local.secrets
  name     = "${local.secrets_path}${each.key}"
  type     = "SecureString"
  key_id   = aws_kms_key.main.arn
  value    = var.secure_settings[each.value.function][each.value.name]
}
